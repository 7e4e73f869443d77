# lme4 reference values for every transform the formula parser supports (tests/test_formula_r.py).
#
# Run from the repository root, with R, lme4 and jsonlite installed:
#   .venv/bin/python tests/reference/formula_data.py    # writes tests/reference/formula_data.csv
#   Rscript tests/reference/formula_reference.R          # writes tests/reference/formula_reference.json
#
# Each model is fitted by REML with lmer on formula_data.csv; the JSON holds, per formula, the fixed
# effects and their standard errors under the names R prints, and the REML criterion.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

data <- read.csv("tests/reference/formula_data.csv", check.names = FALSE, stringsAsFactors = FALSE)
data$dose <- factor(data$dose, levels = c("low", "mid", "high"), ordered = TRUE)
stopifnot(is.logical(data$flag))

# center() is not in base R; this is what the parser's center(x) computes
center <- function(x) x - mean(x, na.rm = TRUE)

formulas <- c(
  "y ~ factor(wave) + age + (1 | site)",
  "y ~ scale(age) + arm + (1 | site)",
  "y ~ scale(age, scale = FALSE) + (1 | site)",
  "y ~ scale(age, center = FALSE) + (1 | site)",
  "y ~ scale(age, center = 40) + (1 | site)",
  "y ~ center(age) + flag + (1 | site)",
  "y ~ poly(age, 2) + (1 | site)",
  "y ~ poly(age, 3) + arm + (1 | site)",
  "y ~ age + I(age^2) + (1 | site)",
  "y ~ I((age - 45)^2/100) + I(age * dose_mg) + (1 | site)",
  "log(score) ~ log(age) + sqrt(dose_mg) + exp(dose_mg) + (1 | site)",
  "y ~ age + offset(age/20) + (1 | site)",
  "y ~ offset(log(dose_mg)) + arm + (1 | site)",
  "y ~ dose + age + (1 | site)",
  "y ~ dose * arm + (1 | site)",
  "y ~ 0 + arm + age + (1 | site)",
  "y ~ 0 + arm + dose + (1 | site)",
  "y ~ age + age:arm + (1 | site)",
  "y ~ flag + age + (1 | site)",
  "y ~ arm * scale(age) + (1 | `site (id)`)",
  "y ~ factor(wave) * flag - 1 + (1 | site)",
  "y ~ (arm + flag + age)^2 + (1 | site)"
)

fits <- lapply(formulas, function(text) {
  fit <- lmer(as.formula(text), data = data, REML = TRUE)
  beta <- fixef(fit)
  se <- sqrt(diag(as.matrix(vcov(fit))))
  list(
    formula = text,
    names = names(beta),
    fixef = as.list(beta),
    se = as.list(setNames(se, names(beta))),
    reml_criterion = unname(REMLcrit(fit)),
    n_obs = nobs(fit)
  )
})

out <- list(
  generated_by = "tests/reference/formula_reference.R",
  lme4_version = as.character(packageVersion("lme4")),
  r_version = R.version.string,
  fits = fits
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/formula_reference.json")
