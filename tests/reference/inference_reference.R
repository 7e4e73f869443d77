# Reference values from lme4 and lmerTest for tests/test_inference.py.
#
# Usage, from the repository root (it calls the project's Python once, to write the simulated data):
#   Rscript tests/reference/inference_reference.R
# The Python interpreter is taken from the environment variable PYTHON (default: .venv/bin/python).
# It writes tests/reference/inference_reference.json next to this script.
#
# Data sets: lme4's Dyestuff, Dyestuff2 and sleepstudy, and two simulated sets shaped like the motivating
# question (24 clusters of very unequal size, a share of stim that differs by cluster): "question" with
# 326,362 rows and "question_small" with 20,000, made by helpers.data.simulate_clustered with the fixed
# arguments below. Each CSV is written to a temporary directory and not committed; its SHA-256 is
# recorded, and the tests regenerate the data and check it.
#
# What is recorded, per data set (REML fits unless stated):
#
# 1. "confint_profile_lme4": lme4's confint(fit, method = "profile"), as it comes. lme4 evaluates the
#    profile at a few points and interpolates with splines, so its limits carry an interpolation error
#    (about 2e-3 on Dyestuff's sigma_b, 4e-5 on sleepstudy's).
# 2. "confint_profile_exact": the same intervals with the interpolation removed. The profile is built
#    from lme4's own deviance functions, exactly as profile.merMod defines it, and its crossings are
#    found with uniroot to 1e-12:
#      - lme4 profiles the ML deviance even for REML fits (devfun2() calls refitML()). For sigma_b and
#        sigma it uses lme4:::devfun2(fit), the ML deviance as a function of (sigma_b, sigma) with beta
#        profiled out, and minimises over the other parameter with optimize();
#      - for a fixed effect beta_j fixed at b it refits, as profile.merMod does, the ML deviance of the
#        model without column j and with offset X_j b (lmer(..., REML = FALSE, offset, devFunOnly =
#        TRUE)), minimised over theta;
#      - the limit is where the profiled deviance exceeds the ML minimum by qchisq(level, 1); when the
#        profile at sigma_b = 0 is still below that, the lower limit is 0, as in lme4.
# 3. "confint_profile_reml": the sigma_b and sigma limits from the REML criterion instead, built from
#    lmerTest's devfun_vp(c(theta, sigma), devfun, reml = TRUE) (lme4's REML deviance with sigma free),
#    found the same way. lme4 has no such option; this pins the package's criterion = "REML" variant.
# 4. "confint_wald": lme4's confint(fit, method = "Wald") (NA for the variance parameters).
# 5. "satterthwaite": lmerTest's summary table (estimate, std. error, Satterthwaite df, t, p), its
#    vcov_varpar (the covariance of (theta, sigma): twice the inverse Hessian of the criterion), for the
#    REML fit and, for sleepstudy, also the ML fit.
#    "satterthwaite_d1e-2" repeats it with a larger numerical-derivative step (see below).
# 6. "bootmer" (Dyestuff, ML fit): 1,000 replicates of lme4's bootMer (sigma_b, sigma, intercept), to
#    compare the package's bootstrap distribution with lme4's, not replicate by replicate.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg))) else "."
out_json <- file.path(here, "inference_reference.json")
python <- Sys.getenv("PYTHON", ".venv/bin/python")

options(warn = 1)
level <- 0.95
cutoff <- qchisq(level, 1)
root_tol <- 1e-12

# ---- the question-shaped data, written by the package's own simulator -------------------------------
question_args <- list(
  n_clusters = 24L, n_obs = 326362L, size_imbalance = 1.6, sigma_group = 0.31, sigma_resid = 0.67,
  intercept = 0.72, slope = -0.1, share_stim = 0.5, share_spread = 0.8,
  effect_size_correlation = -0.5, seed = 8L
)
# The same shape with 20,000 rows: small enough for lmerTest's numerical derivatives to be exact to
# about 1e-6 (see "satterthwaite_d1e-2" below for what happens at 326,362 rows).
question_small_args <- modifyList(question_args, list(n_obs = 20000L))
py_code <- paste(
  "import hashlib, json, sys",
  "from helpers.data import simulate_clustered",
  "frame = simulate_clustered(**json.loads(sys.argv[1]))",
  "text = frame.to_csv(index=False, lineterminator='\\n')",
  "open(sys.argv[2], 'w', newline='').write(text)",
  "print(hashlib.sha256(text.encode()).hexdigest())",
  sep = "\n"
)
simulated <- function(args, name) {
  csv <- file.path(tempdir(), paste0(name, ".csv"))
  sha <- system2(
    python,
    c("-c", shQuote(py_code), shQuote(toJSON(args, auto_unbox = TRUE)), shQuote(csv)),
    stdout = TRUE
  )
  frame <- read.csv(csv)
  frame$condition <- factor(frame$condition, levels = c("unstim", "stim"))
  frame$cluster <- factor(frame$cluster)
  list(
    data = frame, formula = y ~ condition + (1 | cluster), source = "helpers.data.simulate_clustered",
    args = args, sha256 = tail(sha, 1)
  )
}

datasets <- list(
  dyestuff = list(data = Dyestuff, formula = Yield ~ 1 + (1 | Batch), source = "lme4::Dyestuff"),
  dyestuff2 = list(data = Dyestuff2, formula = Yield ~ 1 + (1 | Batch), source = "lme4::Dyestuff2"),
  sleepstudy = list(
    data = sleepstudy, formula = Reaction ~ Days + (1 | Subject), source = "lme4::sleepstudy"
  ),
  question = simulated(question_args, "question"),
  question_small = simulated(question_small_args, "question_small")
)

named <- function(x) as.list(setNames(as.numeric(x), names(x)))
limits <- function(ci) {
  lapply(setNames(seq_len(nrow(ci)), rownames(ci)), function(i) {
    list(lower = unname(ci[i, 1]), upper = unname(ci[i, 2]))
  })
}

# Minimise a function of one variable on [lo, hi] and also try the lower end (the boundary).
# Points where lme4's deviance function fails count as +Inf; optimize() warns about them, harmlessly.
min1 <- function(f, lo, hi) {
  o <- suppressWarnings(optimize(f, c(lo, hi), tol = 1e-12))
  if (hi - o$minimum < 1e-6 * hi) stop("the inner minimum sits at the upper end of its interval")
  min(o$objective, f(lo))
}

# Where does a profile g(x) (increasing away from x_hat) cross base + cutoff? Search outward by `step`.
crossing <- function(g, x_hat, step, base, floor = -Inf) {
  h <- function(x) g(x) - base - cutoff
  if (step < 0 && is.finite(floor) && h(floor) <= 0) {
    return(floor)
  }
  inner <- x_hat
  outer <- x_hat + step
  k <- 0
  while (h(outer) < 0) {
    inner <- outer
    step <- 2 * step
    outer <- if (is.finite(floor)) max(floor, x_hat + step) else x_hat + step
    k <- k + 1
    if (k > 60) stop("no crossing found")
  }
  uniroot(h, sort(c(inner, outer)), tol = root_tol * max(1, abs(x_hat)))$root
}

exact_profile <- function(fit) {
  dd <- lme4:::devfun2(fit)
  opt <- attr(dd, "optimum")
  base <- attr(dd, "basedev")
  sb_hat <- opt[[1]]
  s_hat <- opt[[2]]
  scale <- s_hat + sb_hat
  # lme4's devfun2 fails far from the optimum (a non positive definite downdate): such points lie far
  # above the minimum, so they count as +Inf.
  safe <- function(sb, s) tryCatch(dd(c(sb, s)), error = function(e) Inf)
  prof_sb <- function(sb) min1(function(s) safe(sb, s), s_hat / 10, s_hat * 10)
  prof_s <- function(s) min1(function(sb) safe(sb, s), 0, 20 * scale)
  out <- list()
  out[[".sig01"]] <- list(
    lower = crossing(prof_sb, sb_hat, -0.1 * scale, base, floor = 0),
    upper = crossing(prof_sb, sb_hat, 0.1 * scale, base)
  )
  out[[".sigma"]] <- list(
    lower = crossing(prof_s, s_hat, -0.05 * s_hat, base, floor = 1e-8 * s_hat),
    upper = crossing(prof_s, s_hat, 0.05 * s_hat, base)
  )
  X <- getME(fit, "X")
  y <- getME(fit, "y")
  g <- getME(fit, "flist")[[1]]
  se <- sqrt(diag(as.matrix(vcov(refitML(fit)))))
  beta_ml <- fixef(refitML(fit))
  for (j in seq_len(ncol(X))) {
    Xw <- X[, j]
    Xd <- X[, -j, drop = FALSE]
    prof_b <- function(b) {
      off <- Xw * b
      devfun <- if (ncol(Xd) == 0) {
        lmer(y ~ 0 + (1 | g), REML = FALSE, offset = off, devFunOnly = TRUE)
      } else {
        lmer(y ~ 0 + Xd + (1 | g), REML = FALSE, offset = off, devFunOnly = TRUE)
      }
      min1(devfun, 0, 20)
    }
    nm <- colnames(X)[j]
    out[[nm]] <- list(
      lower = crossing(prof_b, beta_ml[[j]], -se[[j]], base),
      upper = crossing(prof_b, beta_ml[[j]], se[[j]], base)
    )
  }
  out
}

reml_profile <- function(fit_lt) {
  devfun <- lmer(formula(fit_lt), fit_lt@frame, REML = TRUE, devFunOnly = TRUE)
  dev <- function(sb, s) {
    tryCatch(lmerTest:::devfun_vp(c(sb / s, s), devfun = devfun, reml = TRUE),
      error = function(e) Inf
    )
  }
  sb_hat <- sqrt(VarCorr(fit_lt)[[1]][1, 1])
  s_hat <- sigma(fit_lt)
  base <- REMLcrit(fit_lt)
  scale <- s_hat + sb_hat
  prof_sb <- function(sb) min1(function(s) dev(sb, s), s_hat / 10, s_hat * 10)
  prof_s <- function(s) min1(function(sb) dev(sb, s), 0, 20 * scale)
  list(
    .sig01 = list(
      lower = crossing(prof_sb, sb_hat, -0.1 * scale, base, floor = 0),
      upper = crossing(prof_sb, sb_hat, 0.1 * scale, base)
    ),
    .sigma = list(
      lower = crossing(prof_s, s_hat, -0.05 * s_hat, base, floor = 1e-8 * s_hat),
      upper = crossing(prof_s, s_hat, 0.05 * s_hat, base)
    )
  )
}

satterthwaite <- function(fit_lt) {
  tab <- coef(summary(fit_lt))
  rows <- lapply(setNames(seq_len(nrow(tab)), rownames(tab)), function(i) {
    list(
      estimate = tab[i, "Estimate"], std_error = tab[i, "Std. Error"], df = tab[i, "df"],
      t_value = tab[i, "t value"], p_value = tab[i, "Pr(>|t|)"]
    )
  })
  list(
    table = rows,
    varpar = c(fit_lt@theta, fit_lt@sigma),
    vcov_varpar = lapply(seq_len(nrow(fit_lt@vcov_varpar)), function(i) fit_lt@vcov_varpar[i, ])
  )
}

# lmerTest differentiates lme4's deviance and covariance of beta numerically (numDeriv, Richardson
# extrapolation from a relative step d = 1e-4). At 326,362 rows both carry floating-point noise that
# numerical differentiation amplifies, so lmerTest's df for the intercept of the "question" set moves in
# its fourth significant digit with the step (compare "satterthwaite" with "satterthwaite_d1e-2", the same
# computation, the same functions devfun_vp and get_covbeta, with d = 1e-2). On the other data sets,
# "question_small" included, the two agree to about 1e-6. The tests hold the package to 1e-4 there and
# to the spread of lmerTest's own answers at 326,362 rows.
satterthwaite_steps <- function(fit_lt, d = 1e-2) {
  reml <- isREML(fit_lt)
  devfun <- lme4::lmer(formula(fit_lt), fit_lt@frame, REML = reml, devFunOnly = TRUE)
  varpar <- c(fit_lt@theta, fit_lt@sigma)
  args <- list(d = d, r = 4)
  h <- numDeriv::hessian(lmerTest:::devfun_vp, varpar, devfun = devfun, reml = reml, method.args = args)
  vcov_varpar <- 2 * solve(h)
  jac <- numDeriv::jacobian(lmerTest:::get_covbeta, varpar, devfun = devfun, method.args = args)
  vcov_beta <- as.matrix(vcov(fit_lt))
  p <- ncol(vcov_beta)
  rows <- lapply(setNames(seq_len(p), colnames(vcov_beta)), function(k) {
    grad <- vapply(seq_len(ncol(jac)), function(i) matrix(jac[, i], p, p)[k, k], numeric(1))
    var_con <- vcov_beta[k, k]
    ddf <- 2 * var_con^2 / sum(grad * (vcov_varpar %*% grad))
    t_value <- fixef(fit_lt)[[k]] / sqrt(var_con)
    list(df = ddf, p_value = 2 * pt(abs(t_value), ddf, lower.tail = FALSE))
  })
  list(step = d, table = rows)
}

results <- list()
for (name in names(datasets)) {
  spec <- datasets[[name]]
  message("data set ", name)
  fit <- suppressMessages(lme4::lmer(spec$formula, spec$data, REML = TRUE))
  message("  fitted; profiling ...")
  fit_lt <- suppressMessages(lmerTest::lmer(spec$formula, spec$data, REML = TRUE))
  entry <- list(
    formula = paste(deparse(spec$formula), collapse = ""),
    data = list(source = spec$source, n_obs = nrow(spec$data)),
    reml = list(
      fixef = named(fixef(fit)),
      sigma_group = sqrt(VarCorr(fit)[[1]][1, 1]),
      sigma = sigma(fit),
      criterion = REMLcrit(fit)
    ),
    ml = list(
      sigma_group = sqrt(VarCorr(refitML(fit))[[1]][1, 1]),
      sigma = sigma(refitML(fit)),
      deviance = deviance(refitML(fit))
    ),
    confint_profile_lme4 = limits(suppressWarnings(suppressMessages(
      confint(fit, method = "profile", level = level)
    ))),
    confint_profile_exact = exact_profile(fit),
    confint_profile_reml = reml_profile(fit_lt),
    confint_wald = limits(confint(fit, method = "Wald", level = level)),
    satterthwaite = satterthwaite(fit_lt),
    "satterthwaite_d1e-2" = satterthwaite_steps(fit_lt)
  )
  if (!is.null(spec$args)) {
    entry$data$args <- spec$args
    entry$data$sha256 <- spec$sha256
  }
  if (name == "sleepstudy") {
    fit_lt_ml <- suppressMessages(lmerTest::lmer(spec$formula, spec$data, REML = FALSE))
    entry$satterthwaite_ml <- satterthwaite(fit_lt_ml)
  }
  if (name == "dyestuff") {
    fit_ml <- lme4::lmer(spec$formula, spec$data, REML = FALSE)
    boot <- suppressMessages(bootMer(
      fit_ml,
      function(m) c(sigma_group = sqrt(VarCorr(m)[[1]][1, 1]), sigma = sigma(m), fixef(m)),
      nsim = 1000, seed = 20240101
    ))
    entry$bootmer <- list(
      fit = "ML", nsim = 1000, seed = 20240101,
      sigma_group = unname(boot$t[, 1]), sigma = unname(boot$t[, 2]), intercept = unname(boot$t[, 3])
    )
  }
  results[[name]] <- entry
}

out <- list(
  generated_by = "tests/reference/inference_reference.R",
  versions = list(
    R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    lmerTest = as.character(packageVersion("lmerTest")),
    numDeriv = as.character(packageVersion("numDeriv"))
  ),
  level = level,
  datasets = results
)
write_json(out, out_json, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null")
message("wrote ", out_json)
