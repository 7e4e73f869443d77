# Reference values from lme4 for a random intercept far larger than the residual (issue 10: theta beyond
# the old cap of 1e4), used by tests/test_fit_units.py.
#
# Usage, from the repository root:
#   Rscript tests/reference/large_theta_reference.R
# It reads tests/reference/large_theta.csv (written by large_theta_data.py, which the test checks by
# regenerating the data from its seed) and writes tests/reference/large_theta_reference.json.
#
# For each model and criterion (REML and ML) it records
# 1. "lmer": lmer's own fit as it comes (theta, the criterion, sigma^2, sigma_b^2, fixed effects, SEs);
# 2. "refined": the same model at the minimum of lme4's own criterion function (devFunOnly = TRUE) over
#    log theta, found by optimize() to 1e-14, and lme4's fit at that theta (mkMerMod). At theta ~ 3e4 the
#    default optimiser stops about 1e-3 short of the minimum in theta; the refined fit is lme4's formulas
#    at their exact optimum, which is what the package is compared with.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg))) else "."
d <- read.csv(file.path(here, "large_theta.csv"))
d$g <- factor(d$g)

summarise <- function(m, reml) {
  list(
    theta = unname(getME(m, "theta")),
    criterion = if (reml) REMLcrit(m) else deviance(m),
    sigma2 = sigma(m)^2,
    sigma2_group = unname(VarCorr(m)$g[1]),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m)))))
  )
}

models <- list(intercept = "y ~ 1 + (1 | g)", slope = "y_x ~ x + (1 | g)")
out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = R.version.string,
  fits = list()
)
for (name in names(models)) {
  f <- as.formula(models[[name]])
  for (reml in c(TRUE, FALSE)) {
    m <- lmer(f, d, REML = reml)
    dev <- lmer(f, d, REML = reml, devFunOnly = TRUE)
    opt <- optimize(function(s) dev(exp(s)), log(getME(m, "theta")) + c(-3, 3), tol = 1e-14)
    parsed <- lFormula(f, d, REML = reml)
    refined <- mkMerMod(
      environment(dev),
      list(par = exp(opt$minimum), fval = opt$objective, conv = 0, feval = 1L, message = ""),
      parsed$reTrms,
      parsed$fr
    )
    key <- paste0(name, if (reml) "_reml" else "_ml")
    out$fits[[key]] <- list(
      formula = models[[name]],
      reml = reml,
      lmer = summarise(m, reml),
      refined = summarise(refined, reml)
    )
  }
}
writeLines(
  toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
  file.path(here, "large_theta_reference.json")
)
cat("wrote", file.path(here, "large_theta_reference.json"), "\n")
