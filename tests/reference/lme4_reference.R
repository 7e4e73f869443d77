# Reference values from R's lme4 and lm() for the tests in tests/test_reference_lme4.py.
#
# Usage, from the repository root:
#   python tests/reference/radon_rows.py              # (re)writes tests/reference/radon.csv
#   python tests/reference/question_shaped.py DIR     # writes DIR/question_shaped.csv (not committed)
#   Rscript tests/reference/lme4_reference.R DIR/question_shaped.csv
# It writes tests/reference/lme4_reference.json next to this script.
#
# For each data set it fits lmer with REML, lmer with ML, and lm, and records the fixed effects, their
# standard errors (vcov), sigma_b^2, sigma^2, theta, the criterion (REMLcrit for REML, deviance for ML),
# logLik, the conditional modes with their conditional SDs (ranef(fit, condVar = TRUE)), lm's
# coefficients, standard errors and sigma, and lm's cluster-robust (CR1) standard errors from
# sandwich::vcovCL(type = "HC1"). It also records lme4's own criterion (the devfun from
# lmer(..., devFunOnly = TRUE)) at a few fixed values of theta, which involve no optimiser at all.
#
# Which theta the fitted values come from. lme4's default optimiser stops when the criterion no longer
# improves, which can leave theta a little (about 1e-7 relative) away from the optimum. For every fit
# this script therefore evaluates lme4's devfun at three candidate optima:
#   "default"  lmer() with its default control;
#   "bobyqa"   lmer() with lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12));
#   "optimize" R's optimize() on the devfun over [0, 50], tol = 1e-12;
# plus theta = 0 (the boundary). The recorded fit ("theta_source") is the default fit, unless another
# candidate has a criterion lower by more than 1e-12 relative (1e-10 at least). Smaller differences are
# rounding: at 326,362 rows lme4's criterion carries about 1e-8 of floating-point noise, and the
# candidates' thetas then differ by up to about 2e-6 relative, which moves sigma_b^2 by less than the
# tests' 1e-5 tolerance. When a candidate is lower by more, every value of the fit (fixed
# effects, vcov, variances, ranef, ...) comes from lme4 evaluated at that theta, using
# lmer(..., start = list(theta = theta), control = lmerControl(optimizer = NULL)), which builds lme4's
# own fitted object at the given theta without optimising. All candidates are kept in "candidates".

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(digest)
  library(sandwich)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) {
  stop("Give the path of question_shaped.csv (written by tests/reference/question_shaped.py).")
}
question_csv <- args[[1]]

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg))) else "."
radon_csv <- file.path(here, "radon.csv")
out_json <- file.path(here, "lme4_reference.json")

theta_grid <- c(0, 0.25, 0.5, 1, 2, 4)

named <- function(x) as.list(setNames(as.numeric(x), names(x)))

criterion_of <- function(fit) if (isREML(fit)) REMLcrit(fit) else deviance(fit)

lme4_fit <- function(formula, data, reml) {
  devfun <- lmer(formula, data, REML = reml, devFunOnly = TRUE)
  default <- suppressMessages(lmer(formula, data, REML = reml))
  tight <- suppressMessages(lmer(formula, data, REML = reml,
    control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))))
  opt <- optimize(devfun, c(0, 50), tol = 1e-12)
  candidates <- list(
    default = getME(default, "theta")[[1]],
    bobyqa = getME(tight, "theta")[[1]],
    optimize = opt$minimum,
    boundary = 0
  )
  values <- vapply(candidates, function(t) devfun(t), numeric(1))
  best <- names(which.min(values))
  improvement_needed <- max(1e-10, 1e-12 * abs(values[["default"]]))
  source <- if (values[[best]] < values[["default"]] - improvement_needed) best else "default"
  fit <- if (source == "default") {
    default
  } else {
    suppressWarnings(suppressMessages(lmer(formula, data, REML = reml,
      start = list(theta = candidates[[source]]), control = lmerControl(optimizer = NULL))))
  }
  group <- names(getME(fit, "flist"))[[1]]
  re <- ranef(fit, condVar = TRUE)[[group]]
  cond_sd <- sqrt(attr(re, "postVar")[1, 1, ])
  vc <- as.matrix(vcov(fit))
  list(
    theta = getME(fit, "theta")[[1]],
    theta_source = source,
    candidates = lapply(names(candidates), function(k) {
      list(name = k, theta = candidates[[k]], criterion = values[[k]])
    }),
    fixef = named(fixef(fit)),
    se = named(setNames(sqrt(diag(vc)), colnames(vc))),
    vcov = unname(lapply(seq_len(nrow(vc)), function(i) as.numeric(vc[i, ]))),
    sigma2_group = as.numeric(VarCorr(fit)[[group]][1, 1]),
    sigma2 = sigma(fit)^2,
    criterion = criterion_of(fit),
    loglik = as.numeric(logLik(fit)),
    singular = isSingular(fit),
    ranef = as.list(setNames(re[, 1], rownames(re))),
    ranef_sd = as.list(setNames(cond_sd, rownames(re)))
  )
}

lm_fit <- function(formula, data, group) {
  fit <- lm(formula, data)
  robust <- vcovCL(fit, cluster = data[[group]], type = "HC1")
  list(
    coef = named(coef(fit)),
    se = named(setNames(sqrt(diag(vcov(fit))), names(coef(fit)))),
    se_cluster = named(setNames(sqrt(diag(robust)), names(coef(fit)))),
    sigma = sigma(fit),
    df_resid = df.residual(fit)
  )
}

criterion_at <- function(formula, data) {
  reml <- lmer(formula, data, REML = TRUE, devFunOnly = TRUE)
  ml <- lmer(formula, data, REML = FALSE, devFunOnly = TRUE)
  list(
    theta = theta_grid,
    reml = vapply(theta_grid, function(t) reml(t), numeric(1)),
    ml = vapply(theta_grid, function(t) ml(t), numeric(1))
  )
}

reference <- function(name, data, response, fixed, group, source, sha256 = NULL) {
  formula <- as.formula(sprintf("%s + (1 | %s)", fixed, group))
  message(sprintf("%s: %d rows, %d groups", name, nrow(data), nlevels(data[[group]])))
  list(
    formula = sprintf("%s + (1 | %s)", fixed, group),
    response = response,
    group = group,
    data = list(
      source = source,
      sha256 = sha256,
      n_obs = nrow(data),
      n_groups = nlevels(data[[group]]),
      sum_response = sum(data[[response]])
    ),
    reml = lme4_fit(formula, data, TRUE),
    ml = lme4_fit(formula, data, FALSE),
    lm = lm_fit(as.formula(fixed), data, group),
    criterion_at = criterion_at(formula, data)
  )
}

radon <- read.csv(radon_csv, stringsAsFactors = FALSE)
radon$county <- factor(radon$county)
question <- read.csv(question_csv, stringsAsFactors = FALSE)
question$condition <- factor(question$condition, levels = c("unstim", "stim"))
question$cluster <- factor(question$cluster)

sets <- list(
  dyestuff = reference("dyestuff", Dyestuff, "Yield", "Yield ~ 1", "Batch", "lme4::Dyestuff"),
  dyestuff2 = reference("dyestuff2", Dyestuff2, "Yield", "Yield ~ 1", "Batch", "lme4::Dyestuff2"),
  sleepstudy = reference("sleepstudy", sleepstudy, "Reaction", "Reaction ~ Days", "Subject",
    "lme4::sleepstudy"),
  radon = reference("radon", radon, "log_radon", "log_radon ~ floor", "county",
    "tests/reference/radon.csv", digest(file = radon_csv, algo = "sha256")),
  question_shaped = reference("question_shaped", question, "y", "y ~ condition", "cluster",
    "tests/reference/question_shaped.py", digest(file = question_csv, algo = "sha256"))
)

out <- list(
  generated_by = "tests/reference/lme4_reference.R",
  versions = list(
    R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    Matrix = as.character(packageVersion("Matrix")),
    sandwich = as.character(packageVersion("sandwich"))
  ),
  notes = paste(
    "Fits: lmer REML, lmer ML, lm. 'theta_source' says which candidate optimum the fit's values",
    "come from (see the script's header); 'criterion_at' is lme4's devfun at fixed theta.",
    "Numbers are written with 15 significant digits."
  ),
  datasets = sets
)
write_json(out, out_json, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null")
message("wrote ", out_json)
