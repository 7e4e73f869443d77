# lme4 reference values for the peer suite (tests/test_peer_suite.py).
# Run from the repository root after tests/peer/make_peer_data.py:
#   Rscript tests/peer/peer_reference.R
# Needs R with lme4 and jsonlite (Debian: r-base-core r-cran-lme4 r-cran-jsonlite).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

cases <- list(
  balanced_two_covariates = y ~ x1 + x2 + (1 | g),
  unbalanced_three_covariates = y ~ x1 + x2 + x3 + (1 | g),
  large_group_variance = y ~ x1 + (1 | g),
  small_group_variance = y ~ x1 + (1 | g),
  growth_panel = weight ~ time + (1 | pig),
  no_intercept = y ~ 0 + x1 + x2 + (1 | g),
  one_giant_cluster = y ~ x1 + (1 | g),
  rare_level = y ~ arm + x1 + (1 | g),
  missing_in_predictor = y ~ x1 + (1 | g)
)

# Tight convergence, so the comparison measures the estimator and not the optimizer's stopping rule.
tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                     check.conv.singular = "ignore")

one_fit <- function(formula, data, reml) {
  fit <- lmer(formula, data = data, REML = reml, control = tight)
  vc <- as.data.frame(VarCorr(fit))
  re <- ranef(fit, condVar = TRUE)[[1]]
  list(
    fixef = as.list(fixef(fit)),
    se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
    sigma2_group = vc$vcov[1],
    sigma2_resid = vc$vcov[2],
    theta = unname(getME(fit, "theta")),
    criterion = if (reml) REMLcrit(fit) else deviance(fit),
    n_obs = nobs(fit),
    n_groups = unname(ngrps(fit)),
    ranef = setNames(as.list(re[, 1]), rownames(re)),
    ranef_sd = setNames(as.list(sqrt(attr(re, "postVar")[1, 1, ])), rownames(re))
  )
}

out <- list(
  generated_by = "tests/peer/peer_reference.R",
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  cases = list()
)
for (name in names(cases)) {
  data <- read.csv(file.path("tests", "peer", "data", paste0(name, ".csv")))
  data[[all.vars(cases[[name]])[length(all.vars(cases[[name]]))]]] <-
    factor(data[[all.vars(cases[[name]])[length(all.vars(cases[[name]]))]]])
  if ("arm" %in% names(data)) data$arm <- factor(data$arm)
  out$cases[[name]] <- list(
    formula = paste(deparse(cases[[name]]), collapse = ""),
    REML = one_fit(cases[[name]], data, TRUE),
    ML = one_fit(cases[[name]], data, FALSE)
  )
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path("tests", "peer", "peer_reference.json"))
cat("wrote tests/peer/peer_reference.json\n")
