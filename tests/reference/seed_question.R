# lme4's and lm()'s fits of the question's data (helpers.seed.seed_question), for
# tests/test_seed_question.py.
#
# Usage, from the repository root:
#   Rscript tests/reference/seed_question.R
# It calls the project's Python once, to write the rows to a CSV in a temporary directory (not
# committed); the interpreter is taken from the environment variable PYTHON (default .venv/bin/python).
# It writes tests/reference/seed_question_lme4.json next to this script, with the CSV's SHA-256, which
# the test checks against the rows the package generates.
#
# Recorded:
#   "lm":         coef, standard errors, t values, sigma, residual df, R-squared, adjusted R-squared,
#                 F statistic and residual quantiles of lm(pSHP2 ~ condition), and the summary as R
#                 prints it;
#   "lmer":       lmer(pSHP2 ~ condition + (1 | cluster)) with lme4's default settings, exactly the
#                 question's call: fixed effects, their standard errors (vcov), t values, the
#                 correlation of the fixed effects, the two variances, theta, the REML criterion, the
#                 quantiles of the scaled residuals, and the summary as lme4 prints it;
#   "lmer_tight": the same model with bobyqa and rhoend = 1e-12, to show how far the default optimiser
#                 stops from the optimum (about 1e-8 relative in theta on these data).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(digest)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg))) else "."
out_json <- file.path(here, "seed_question_lme4.json")
python <- Sys.getenv("PYTHON", ".venv/bin/python")

# ---- the rows, written by the package itself -----------------------------------------------------------
rows_csv <- file.path(tempdir(), "seed_question.csv")
py_code <- paste(
  "import sys",
  "from helpers.seed import seed_question",
  "text = seed_question().to_csv(index=False, lineterminator='\\n')",
  "open(sys.argv[1], 'w', newline='').write(text)",
  sep = "\n"
)
status <- system2(python, c("-c", shQuote(py_code), shQuote(rows_csv)))
if (status != 0) stop("the Python call that writes the rows failed")
rows_sha <- digest(file = rows_csv, algo = "sha256")

rows <- read.csv(rows_csv, stringsAsFactors = FALSE)
rows$condition <- factor(rows$condition, levels = c("unstim", "stim"))
rows$cluster <- factor(rows$cluster)

named <- function(x) as.list(setNames(as.numeric(x), names(x)))

quantiles <- function(x) as.list(setNames(unname(quantile(x)), c("min", "q1", "median", "q3", "max")))

lmer_summary <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  v <- as.matrix(vcov(fit))
  list(
    fixef = named(fixef(fit)),
    se = named(setNames(sqrt(diag(v)), names(fixef(fit)))),
    t = named(setNames(fixef(fit) / sqrt(diag(v)), names(fixef(fit)))),
    corr_fixef = v[1, 2] / sqrt(v[1, 1] * v[2, 2]),
    scaled_resid_quantiles = quantiles(residuals(fit, type = "pearson", scaled = TRUE)),
    sigma2_group = vc$vcov[vc$grp == "cluster"],
    sigma2_resid = vc$vcov[vc$grp == "Residual"],
    theta = unname(getME(fit, "theta")),
    criterion = REMLcrit(fit),
    loglik = as.numeric(logLik(fit))
  )
}

# ---- the fits ------------------------------------------------------------------------------------------
ols <- lm(pSHP2 ~ condition, data = rows)
fit <- lmer(pSHP2 ~ condition + (1 | cluster), data = rows)
tight <- lmer(pSHP2 ~ condition + (1 | cluster), data = rows,
  control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))

out <- list(
  generated_by = "tests/reference/seed_question.R",
  versions = list(
    R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    Matrix = as.character(packageVersion("Matrix"))
  ),
  data = list(
    source = "helpers.seed.seed_question, written with DataFrame.to_csv(index=False, lineterminator='\\n')",
    sha256 = rows_sha,
    n_obs = nrow(rows),
    n_groups = nlevels(rows$cluster),
    sum_response = sum(rows$pSHP2)
  ),
  lm = list(
    coef = named(coef(ols)),
    se = named(setNames(sqrt(diag(vcov(ols))), names(coef(ols)))),
    t = named(coef(summary(ols))[, "t value"]),
    sigma = sigma(ols),
    df_resid = df.residual(ols),
    r_squared = summary(ols)$r.squared,
    adj_r_squared = summary(ols)$adj.r.squared,
    f_statistic = unname(summary(ols)$fstatistic[1]),
    resid_quantiles = quantiles(residuals(ols)),
    printed = capture.output(print(summary(ols)))
  ),
  lmer = c(lmer_summary(fit), list(printed = capture.output(print(summary(fit))))),
  lmer_tight = lmer_summary(tight)
)
write_json(out, out_json, auto_unbox = TRUE, digits = NA, pretty = TRUE)
message("wrote ", out_json)
