# Reference values from lme4 and lmerTest for random slopes (issue 13): one grouping factor, q random
# terms, REML and ML, polished.
#
# Usage, from the repository root, one command per step:
#   .venv/bin/python tests/reference/random_slopes_data.py                    # the committed small CSVs
#   .venv/bin/python tests/reference/random_slopes_data.py --generated DIR    # the large sets, into DIR
#   Rscript tests/reference/random_slopes_reference.R DIR                     # about 7 minutes
#   .venv/bin/python tests/reference/random_slopes_statsmodels.py DIR         # about 1 minute
# (With the environment variable RANDOM_SLOPES_QUICK set, the R script skips the 326,362-row sets and
# writes DIR/random_slopes_reference_quick.json instead: a trial run of about a minute.)
# DIR is any scratch directory (the generated CSVs are not committed; their SHA-256 is recorded). This
# script writes tests/reference/random_slopes_reference.json next to itself. Most of its time goes to the
# 326,362-row sets: each lmer fit with random slopes takes about 10 s there, and every model is fitted
# with four optimisers, REML and ML.
#
# Data sets ("datasets" in the JSON):
#   sleepstudy       lme4::sleepstudy (also checked to be identical to the package's copy, DIR/sleepstudy.csv)
#   three_terms      tests/reference/random_slopes_three_terms.csv: 40 clusters, x1 and x2, missing values
#                    in x2 and y (lme4 drops those rows; one cluster loses all its rows)
#   small_clusters   tests/reference/random_slopes_small_clusters.csv: 2,000 clusters of 2 to 6 rows
#   singular         tests/reference/random_slopes_singular.csv: 5 clusters of 10 rows, no slope variance
#   question_slopes  DIR/question_slopes.csv: question_shaped.py's 326,362 rows in 24 clusters with a
#                    stim effect that varies by cluster (SD 0.06), response pSHP2
#   seed_question    DIR/seed_question.csv: the question's own rows (helpers.seed.seed_question)
#
# Polishing ("optimisers" in each fit). Every model is fitted with four optimisers:
#   default      lmer's default control (nloptwrap in lme4 1.1-31), as a user would run it;
#   bobyqa       minqa's bobyqa, rhoend = 1e-12;
#   Nelder_Mead  lme4's Nelder_Mead, FtolAbs = 1e-14, FtolRel = 1e-15, XtolRel = 1e-12;
#   nloptwrap    nloptr's BOBYQA, xtol_abs = 1e-12, ftol_abs = 1e-14, ftol_rel = 1e-15, xtol_rel = 1e-12.
# Each candidate theta is evaluated with the same lme4 deviance function (lmer(..., devFunOnly = TRUE)),
# and the fit with the lowest criterion is the one recorded ("winner"); "spread" is the largest minus the
# smallest of the four criteria, "default_minus_best" how far lmer's default stopped above the winner. Every recorded value of a fit comes from that winning lmer object.
#
# Per fit: formula, REML flag, theta (getME(m, "theta"), names as lme4 gives them) and its lower bounds,
# fixed effects, standard errors and the full vcov, as.data.frame(VarCorr(m)) (columns grp, var1, var2,
# vcov, sdcor, in lme4's row order), the criterion (REMLcrit for REML fits, deviance for ML fits), the
# whole of m@devcomp$cmp, logLik with its df, AIC, BIC, sigma, isSingular, n_obs, n_groups, the
# conditional modes (ranef, one column per term) with lme4's conditional SDs (as.data.frame(ranef(m,
# condVar = TRUE))) and, per group, the full q x q conditional covariance sigma^2 T M_g^-1 T' computed
# from lme4's Lambda and Z (lme4's own condVar leaves out the blocks between two terms of the same
# factor, e.g. in (Days || Subject); where lme4 does give a block, the two agree, and the script checks
# that to 1e-8 relative). For REML fits, lmerTest's Satterthwaite table (estimate, SE, df, t, p).
#
# Also: "anova" (lme4's anova(m_intercept, m_slope) on default REML fits, which refits both by ML, as a
# user would see it; plus the same LRT from the polished ML fits with the naive chi-square p and the
# 50:50 chi-square(1)/chi-square(2) mixture p of Stram & Lee); "confint" (Wald and profile intervals,
# confint(m, method = "profile", oldNames = FALSE), for sleepstudy (Days | Subject) and (Days || Subject);
# lme4 profiles the ML deviance even for REML fits); "predict" (predict(m) and predict(m, re.form = NA)
# for the first 10 rows of sleepstudy).

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
  library(digest)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) {
  stop("Give the directory written by: python tests/reference/random_slopes_data.py --generated DIR")
}
generated_dir <- args[[1]]

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg))) else "."
out_json <- file.path(here, "random_slopes_reference.json")

options(warn = 1)
started <- Sys.time()

# ---- data ---------------------------------------------------------------------------------------------
read_set <- function(path, group, factors = character()) {
  d <- read.csv(path, stringsAsFactors = FALSE)
  d[[group]] <- factor(d[[group]])
  if ("condition" %in% factors) d$condition <- factor(d$condition, levels = c("unstim", "stim"))
  d
}
set_info <- function(source, data, group, path = NULL) {
  list(
    source = source,
    sha256 = if (is.null(path)) NULL else digest(file = path, algo = "sha256"),
    n_rows = nrow(data),
    n_groups = nlevels(data[[group]])
  )
}

committed <- function(name) file.path(here, paste0("random_slopes_", name, ".csv"))
generated <- function(name) file.path(generated_dir, paste0(name, ".csv"))

sleep_pkg <- read.csv(generated("sleepstudy"), stringsAsFactors = FALSE)
sleep_identical <- identical(sleep_pkg$Reaction, sleepstudy$Reaction) &&
  identical(as.numeric(sleep_pkg$Days), as.numeric(sleepstudy$Days)) &&
  identical(as.character(sleep_pkg$Subject), as.character(sleepstudy$Subject))
if (!sleep_identical) stop("the package's sleepstudy differs from lme4::sleepstudy")

data <- list(
  sleepstudy = sleepstudy,
  three_terms = read_set(committed("three_terms"), "g"),
  small_clusters = read_set(committed("small_clusters"), "g"),
  singular = read_set(committed("singular"), "g"),
  question_slopes = read_set(generated("question_slopes"), "cluster", "condition"),
  seed_question = read_set(generated("seed_question"), "cluster", "condition")
)
datasets <- list(
  sleepstudy = c(set_info("lme4::sleepstudy", sleepstudy, "Subject"),
    list(identical_to_package_copy = sleep_identical)),
  three_terms = set_info("tests/reference/random_slopes_three_terms.csv", data$three_terms, "g",
    committed("three_terms")),
  small_clusters = set_info("tests/reference/random_slopes_small_clusters.csv", data$small_clusters,
    "g", committed("small_clusters")),
  singular = set_info("tests/reference/random_slopes_singular.csv", data$singular, "g",
    committed("singular")),
  question_slopes = set_info("tests/reference/random_slopes_data.py: question_slopes()",
    data$question_slopes, "cluster", generated("question_slopes")),
  seed_question = set_info("helpers.seed.seed_question (random_slopes_data.py --generated)",
    data$seed_question, "cluster", generated("seed_question"))
)

# ---- models ---------------------------------------------------------------------------------------------
models <- list(
  sleepstudy_slope = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)"),
  sleepstudy_uncorrelated = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days || Subject)"),
  sleepstudy_two_terms = list(data = "sleepstudy",
    formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
  sleepstudy_slope_only = list(data = "sleepstudy", formula = "Reaction ~ Days + (0 + Days | Subject)"),
  sleepstudy_intercept = list(data = "sleepstudy", formula = "Reaction ~ Days + (1 | Subject)"),
  three_terms = list(data = "three_terms", formula = "y ~ x1 + x2 + (1 + x1 + x2 | g)"),
  small_clusters = list(data = "small_clusters", formula = "y ~ x + (1 + x | g)"),
  singular = list(data = "singular", formula = "y ~ x + (1 + x | g)"),
  singular_uncorrelated = list(data = "singular", formula = "y ~ x + (x || g)"),
  question_slopes = list(data = "question_slopes",
    formula = "pSHP2 ~ condition + (1 + condition | cluster)"),
  question_slopes_intercept = list(data = "question_slopes",
    formula = "pSHP2 ~ condition + (1 | cluster)"),
  seed_question = list(data = "seed_question",
    formula = "pSHP2 ~ condition + (1 + condition | cluster)"),
  seed_question_intercept = list(data = "seed_question", formula = "pSHP2 ~ condition + (1 | cluster)")
)

quick <- nzchar(Sys.getenv("RANDOM_SLOPES_QUICK"))  # a quick trial run: skip the 326,362-row sets
if (quick) models <- models[!grepl("question", names(models))]
if (quick) out_json <- file.path(generated_dir, "random_slopes_reference_quick.json")

controls <- list(
  default = lmerControl(),
  bobyqa = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5)),
  Nelder_Mead = lmerControl(optimizer = "Nelder_Mead",
    optCtrl = list(FtolAbs = 1e-14, FtolRel = 1e-15, XtolRel = 1e-12, maxfun = 1e5)),
  nloptwrap = lmerControl(optimizer = "nloptwrap",
    optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, ftol_rel = 1e-15, xtol_rel = 1e-12,
      maxeval = 1e5))
)

# ---- helpers --------------------------------------------------------------------------------------------
named <- function(x) as.list(setNames(as.numeric(x), names(x)))
matrix_rows <- function(m) unname(lapply(seq_len(nrow(m)), function(i) I(as.numeric(m[i, ]))))
criterion_of <- function(fit) if (isREML(fit)) REMLcrit(fit) else deviance(fit)

columns <- function(df) {
  out <- lapply(df, function(col) if (is.factor(col)) as.character(col) else col)
  out
}

# The full conditional covariance of each group's random effects, sigma^2 Lambda A^-1 Lambda' with
# A = Lambda' Z' Z Lambda + I, taken block by block (one grouping factor: A is block diagonal by group).
cond_cov <- function(fit) {
  cnms <- fit@cnms
  ps <- lengths(cnms)
  gp <- getME(fit, "Gp")
  n_levels <- nlevels(getME(fit, "flist")[[1]])
  lambda <- getME(fit, "Lambda")
  zt <- getME(fit, "Zt")
  a <- crossprod(t(zt) %*% lambda) + Diagonal(ncol(lambda))
  s2 <- sigma(fit)^2
  lapply(seq_len(n_levels), function(j) {
    idx <- unlist(lapply(seq_along(ps), function(k) gp[[k]] + (j - 1) * ps[[k]] + seq_len(ps[[k]])))
    l <- as.matrix(lambda[idx, idx])
    v <- s2 * l %*% solve(as.matrix(a[idx, idx])) %*% t(l)
    v
  })
}

ranef_record <- function(fit) {
  group <- names(getME(fit, "flist"))[[1]]
  re <- ranef(fit, condVar = TRUE)
  modes <- re[[group]]
  long <- as.data.frame(re)
  terms <- colnames(modes)
  condsd <- lapply(setNames(terms, terms), function(t) {
    rows <- long[long$term == t, ]
    I(as.numeric(rows$condsd[match(rownames(modes), as.character(rows$grp))]))
  })
  full <- cond_cov(fit)
  # lme4's own blocks: one q x q array per factor, or a list of per-term arrays for several terms.
  pv <- attr(modes, "postVar")
  lme4_blocks <- if (is.list(pv)) pv else list(all = pv)
  offset <- 0
  for (blk in lme4_blocks) {
    k <- dim(blk)[[1]]
    for (j in seq_along(full)) {
      mine <- full[[j]][offset + seq_len(k), offset + seq_len(k), drop = FALSE]
      theirs <- blk[, , j]
      if (max(abs(mine - theirs)) > 1e-8 * max(1, max(abs(theirs)))) {
        stop("conditional covariance differs from lme4's condVar")
      }
    }
    offset <- offset + k
  }
  list(
    group = group,
    levels = I(rownames(modes)),
    terms = I(terms),
    modes = lapply(modes, function(v) I(as.numeric(v))),
    condsd = condsd,
    condcov = lapply(full, matrix_rows),
    condcov_from_lme4_blocks = !is.list(pv)
  )
}

varcorr_record <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
}

satterthwaite <- function(fit) {
  tab <- summary(as_lmerModLmerTest(fit))$coefficients
  list(
    terms = rownames(tab),
    estimate = as.numeric(tab[, "Estimate"]),
    se = as.numeric(tab[, "Std. Error"]),
    df = as.numeric(tab[, "df"]),
    t = as.numeric(tab[, "t value"]),
    p = as.numeric(tab[, "Pr(>|t|)"])
  )
}

fit_record <- function(fit, formula, reml, runs, winner) {
  vc <- as.matrix(vcov(fit))
  ll <- logLik(fit)
  out <- list(
    formula = formula,
    REML = reml,
    winner = winner,
    spread = max(vapply(runs, `[[`, numeric(1), "criterion")) -
      min(vapply(runs, `[[`, numeric(1), "criterion")),
    default_minus_best = runs$default$criterion - runs[[winner]]$criterion,
    optimisers = runs,
    theta = named(getME(fit, "theta")),
    theta_lower = I(as.numeric(getME(fit, "lower"))),
    fixef = named(fixef(fit)),
    se = named(setNames(sqrt(diag(vc)), colnames(vc))),
    vcov = list(names = colnames(vc), rows = matrix_rows(vc)),
    varcorr = varcorr_record(fit),
    criterion_name = if (reml) "REML" else "deviance",
    criterion = criterion_of(fit),
    devcomp_cmp = as.list(fit@devcomp$cmp),
    loglik = as.numeric(ll),
    loglik_df = attr(ll, "df"),
    AIC = AIC(fit),
    BIC = BIC(fit),
    sigma = sigma(fit),
    singular = isSingular(fit),
    n_obs = nobs(fit),
    n_groups = as.list(ngrps(fit)),
    ranef = ranef_record(fit)
  )
  if (reml) out$satterthwaite <- satterthwaite(fit)
  out
}

# Fit with every optimiser, evaluate each theta with one deviance function, keep the lowest.
polished <- function(formula, d, reml) {
  f <- as.formula(formula)
  devfun <- lme4::lmer(f, d, REML = reml, devFunOnly = TRUE)
  fits <- list()
  runs <- list()
  for (name in names(controls)) {
    warned <- character()
    t0 <- Sys.time()
    fit <- withCallingHandlers(
      suppressMessages(lme4::lmer(f, d, REML = reml, control = controls[[name]])),
      warning = function(w) {
        warned <<- c(warned, conditionMessage(w))
        invokeRestart("muffleWarning")
      }
    )
    seconds <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
    theta <- getME(fit, "theta")
    fits[[name]] <- fit
    runs[[name]] <- list(
      criterion = devfun(theta),
      criterion_reported = criterion_of(fit),
      theta = I(as.numeric(theta)),
      feval = fit@optinfo$feval,
      messages = I(as.character(c(fit@optinfo$conv$lme4$messages, fit@optinfo$message, warned))),
      seconds = seconds
    )
  }
  crit <- vapply(runs, `[[`, numeric(1), "criterion")
  winner <- names(which.min(crit))
  message(sprintf("  %s %s: winner %s, spread %.3g", formula, if (reml) "REML" else "ML", winner,
    max(crit) - min(crit)))
  list(fit = fits[[winner]], record = fit_record(fits[[winner]], formula, reml, runs, winner))
}

# ---- the fits -------------------------------------------------------------------------------------------
fits <- list()
objects <- list()
for (key in names(models)) {
  spec <- models[[key]]
  message(key)
  reml <- polished(spec$formula, data[[spec$data]], TRUE)
  ml <- polished(spec$formula, data[[spec$data]], FALSE)
  objects[[key]] <- list(reml = reml$fit, ml = ml$fit)
  fits[[key]] <- list(dataset = spec$data, formula = spec$formula, reml = reml$record, ml = ml$record)
}

# ---- model comparison -----------------------------------------------------------------------------------
comparison <- function(small, big) {
  d <- data[[models[[big]]$data]]
  m0 <- suppressMessages(lme4::lmer(as.formula(models[[small]]$formula), d))
  m1 <- suppressMessages(lme4::lmer(as.formula(models[[big]]$formula), d))
  tab <- suppressMessages(anova(m0, m1))
  dev0 <- fits[[small]]$ml$criterion
  dev1 <- fits[[big]]$ml$criterion
  df <- fits[[big]]$ml$loglik_df - fits[[small]]$ml$loglik_df
  chisq <- dev0 - dev1
  list(
    models = c(small, big),
    formulas = c(models[[small]]$formula, models[[big]]$formula),
    anova = list(
      rows = c("m_intercept", "m_slope"),
      npar = as.numeric(tab$npar),
      AIC = as.numeric(tab$AIC),
      BIC = as.numeric(tab$BIC),
      logLik = as.numeric(tab$logLik),
      deviance = as.numeric(tab$deviance),
      Chisq = as.numeric(tab$Chisq),
      Df = as.numeric(tab$Df),
      p = as.numeric(tab[["Pr(>Chisq)"]])
    ),
    polished_lrt = list(
      deviance = c(dev0, dev1),
      chisq = chisq,
      df = df,
      p_chisq = pchisq(chisq, df, lower.tail = FALSE),
      p_mixture_chisq1_chisq2 = 0.5 * pchisq(chisq, 1, lower.tail = FALSE) +
        0.5 * pchisq(chisq, 2, lower.tail = FALSE)
    )
  )
}
message("anova")
anovas <- list(sleepstudy = comparison("sleepstudy_intercept", "sleepstudy_slope"))
if (!quick) {
  anovas$question_slopes <- comparison("question_slopes_intercept", "question_slopes")
  anovas$seed_question <- comparison("seed_question_intercept", "seed_question")
}

# ---- confidence intervals and predictions (sleepstudy) --------------------------------------------------
interval_table <- function(ci) {
  list(
    names = rownames(ci),
    lower = as.numeric(ci[, 1]),
    upper = as.numeric(ci[, 2])
  )
}
message("confint")
confints <- list()
for (key in c("sleepstudy_slope", "sleepstudy_uncorrelated")) {
  confints[[key]] <- list()
  for (method in c("reml", "ml")) {
    fit <- objects[[key]][[method]]
    confints[[key]][[method]] <- list(
      wald = interval_table(confint(fit, method = "Wald", oldNames = FALSE)),
      profile = interval_table(suppressWarnings(
        confint(fit, method = "profile", oldNames = FALSE)))
    )
  }
}

message("predict")
predictions <- list()
for (method in c("reml", "ml")) {
  fit <- objects$sleepstudy_slope[[method]]
  predictions[[method]] <- list(
    rows = 1:10,
    with_random = as.numeric(predict(fit)[1:10]),
    fixed_only = as.numeric(predict(fit, re.form = NA)[1:10])
  )
}

# ---- write ----------------------------------------------------------------------------------------------
out <- list(
  generated_by = "tests/reference/random_slopes_reference.R",
  versions = list(
    R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    lmerTest = as.character(packageVersion("lmerTest")),
    Matrix = as.character(packageVersion("Matrix")),
    nloptr = as.character(packageVersion("nloptr")),
    minqa = as.character(packageVersion("minqa"))
  ),
  notes = paste(
    "Each fit is the lowest criterion of four optimisers (see 'optimisers', 'winner', 'spread').",
    "'criterion' is REMLcrit for REML fits and deviance for ML fits. 'ranef$condcov' holds, per group",
    "(in 'ranef$levels' order), the full q x q conditional covariance; 'ranef$condsd' is lme4's",
    "conditional SD per term. 'anova$anova' is lme4's anova() on default REML fits (refitted by ML);",
    "'polished_lrt' uses the polished ML fits. A null lower bound in 'theta_lower' is -Inf; a null",
    "Wald limit means lme4 gives none. Numbers are written with 15 significant digits."
  ),
  seconds = as.numeric(difftime(Sys.time(), started, units = "secs")),
  datasets = datasets,
  fits = fits,
  anova = anovas,
  confint = confints,
  predict = list(model = "sleepstudy_slope", values = predictions)
)
# Written by hand so the file stays small: every part is pretty-printed except the fits, which are
# written one per line (the 2,000-cluster fit's conditional modes and covariances would otherwise put
# one number on each of about 50,000 lines).
as_json <- function(x, pretty = FALSE) {
  as.character(toJSON(x, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = pretty))
}
fit_lines <- vapply(names(fits), function(key) {
  entry <- fits[[key]]
  sprintf("    %s: {\"dataset\": %s, \"formula\": %s,\n      \"reml\": %s,\n      \"ml\": %s}",
    as_json(key), as_json(entry$dataset), as_json(entry$formula), as_json(entry$reml),
    as_json(entry$ml))
}, character(1))
parts <- vapply(names(out), function(key) {
  value <- if (key == "fits") {
    paste0("{\n", paste(fit_lines, collapse = ",\n"), "\n  }")
  } else {
    gsub("\n", "\n  ", as_json(out[[key]], pretty = TRUE))
  }
  sprintf("  %s: %s", as_json(key), value)
}, character(1))
writeLines(paste0("{\n", paste(parts, collapse = ",\n"), "\n}"), out_json)
message("wrote ", out_json)
