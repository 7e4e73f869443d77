"""Frozen result types and summaries that an R user recognises at a glance.

Results never change after they are made: every field is set once by :mod:`helpers.fit`, and their
Series and DataFrames are handed out as copies (:class:`PandasCopies`), so changing what a reader got
never changes the result. Methods that compute more (intervals, tests, predictions) return new objects
and leave the result as it was.

One name per idea, in every result:

- ``sigma2_resid``: the residual variance (:attr:`OlsResult.sigma2_resid`, :attr:`LmmResult.sigma2_resid`);
- ``sigma``: the residual standard deviation, the square root of ``sigma2_resid``, as lme4's ``sigma()``
  and ``confint`` name it (the column ``sigma`` of bootstrap and profile intervals);
- ``sigma2_group`` and ``sigma_group``: the between-cluster variance and standard deviation of a random
  intercept (with random slopes, the variances and covariances are in ``varcorr``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .formula import r_term_name

if TYPE_CHECKING:
    from .design import Design, SufficientStats
    from .kernel import OptSummary

__all__ = ["OlsResult", "LmmResult", "PandasCopies", "r_term_name"]  # r_term_name: helpers.formula

#: Before pandas 3 (copy-on-write by default) a shallow copy shares its values, so copy them.
_DEEP_COPIES = int(pd.__version__.split(".")[0]) < 3


class PandasCopies:
    """For frozen result dataclasses: their Series and DataFrames are handed out as copies.

    ``frozen=True`` stops ``fit.fe_params = x`` but not ``fit.fe_params.iloc[0] = 0``, which would change
    the Series the result holds. A class with this base keeps its own copies of the pandas objects it
    was made with, and every read of such an attribute returns a new copy (copy-on-write, so no values
    are copied until someone writes to it), so a change to what a reader got never reaches the result.

    Examples
    --------
    >>> ols = OlsResult(pd.Series({"a": 1.0}), pd.Series({"a": 0.5}), pd.DataFrame(), 1.0, 3, 2, 0,
    ...                 np.zeros(3), "y ~ 1")
    >>> mine = ols.params
    >>> mine.iloc[0] = 99.0
    >>> float(ols.params.iloc[0]), float(mine.iloc[0])
    (1.0, 99.0)
    """

    def __post_init__(self) -> None:
        for name, value in list(vars(self).items()):
            if isinstance(value, pd.Series | pd.DataFrame):
                object.__setattr__(self, name, value.copy(deep=True))

    def __getattribute__(self, name: str) -> object:
        value = object.__getattribute__(self, name)
        if isinstance(value, pd.Series | pd.DataFrame):
            return value.copy(deep=_DEEP_COPIES)
        return value


def _fmt_table(rows: list[list], header: list, left: int = 1) -> str:
    """Rows of text in columns: the first ``left`` columns flush left, the rest flush right."""
    widths = [max(len(str(r[k])) for r in rows + [header]) for k in range(len(header))]
    lines = []
    for row in [header] + rows:
        cells = [
            str(v).ljust(w) if k < left else str(v).rjust(w)
            for k, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


def _sig(x: float, digits: int) -> str:
    """Format like R's print with ``digits`` significant digits."""
    if x == 0 or not np.isfinite(x):
        return f"{x:g}" if np.isfinite(x) else str(x)
    return f"{x:.{digits}g}"


def _decimals(values: ArrayLike, digits: int = 4) -> int:
    """R's rule for a column: enough decimals that its smallest non-zero entry shows ``digits`` digits."""
    finite = [abs(v) for v in np.ravel(values) if np.isfinite(v) and v != 0]
    if not finite:
        return 0
    return int(min(max(digits - 1 - np.floor(np.log10(min(finite))), 0), 15))


def _column(values: ArrayLike, digits: int = 4) -> list[str]:
    places = _decimals(values, digits)
    return [f"{v:.{places}f}" for v in values]


def _coef_rows(
    names: Sequence[str], values: np.ndarray, ses: np.ndarray, digits: int = 4
) -> list[list[str]]:
    """Estimate and SE share their decimals (as R's printCoefmat formats them); t has its own."""
    places = _decimals(np.concatenate([values, ses]), digits)
    tvals = np.asarray(values) / np.asarray(ses)
    t_text = _column(tvals, digits)
    return [
        [r_term_name(name), f"{b:.{places}f}", f"{se:.{places}f}", t]
        for name, b, se, t in zip(names, values, ses, t_text, strict=True)
    ]


def _quantile_line(resid: np.ndarray, places: int | None = None) -> str:
    q = np.quantile(resid, [0, 0.25, 0.5, 0.75, 1.0])
    header = ["Min", "1Q", "Median", "3Q", "Max"]
    vals = _column(q) if places is None else [f"{v:.{places}f}" for v in q]
    width = max(len(v) for v in vals + header)
    return " ".join(h.rjust(width) for h in header) + "\n" + " ".join(v.rjust(width) for v in vals)


@dataclass(frozen=True, eq=False)
class OlsResult(PandasCopies):
    """A pooled OLS fit (R's ``lm``).

    Attributes
    ----------
    params, bse : pandas.Series
        Coefficients and their classical standard errors.
    cov_params : pandas.DataFrame
    sigma2_resid : float
        Residual variance, RSS / (N - p), as :attr:`LmmResult.sigma2_resid`. ``sigma2`` is its former
        name, kept as a deprecated alias.
    n_obs, df_resid, n_dropped : int
    resid : ndarray
        Residuals, in the order of the rows used.
    cluster : str or None
        The clustering column of the robust SEs, if any.
    bse_cluster : pandas.Series or None
        Cluster-robust (CR1) standard errors, with the small-sample factor G/(G-1) (N-1)/(N-p) that
        statsmodels and R's sandwich::vcovCL use by default.
    cov_cluster : pandas.DataFrame or None
    formula : str
    tss : float or None
        The total sum of squares R's ``summary.lm`` uses: about the mean with an intercept, about 0
        without; None for a fit from sums alone. It gives :attr:`rsquared`, :attr:`rsquared_adj`,
        :attr:`fvalue` and :attr:`f_pvalue`.
    reference_levels : dict
        Factor -> its reference level, as :attr:`LmmResult.reference_levels` (shown in the summary).
    """

    params: pd.Series
    bse: pd.Series
    cov_params: pd.DataFrame
    sigma2_resid: float
    n_obs: int
    df_resid: int
    n_dropped: int
    resid: np.ndarray
    formula: str
    cluster: str | None = None
    bse_cluster: pd.Series | None = None
    cov_cluster: pd.DataFrame | None = None
    n_clusters: int | None = None
    tss: float | None = None
    reference: tuple = ()

    @property
    def reference_levels(self) -> dict:
        """Factor -> its reference (first) level."""
        return dict(self.reference)

    @property
    def _has_intercept(self) -> bool:
        return "Intercept" in self.params.index

    @property
    def rsquared(self) -> float:
        """R's "Multiple R-squared": 1 - RSS / TSS (NaN for a fit from sums alone)."""
        if self.tss is None:
            return float("nan")
        return 1.0 - self.sigma2_resid * self.df_resid / self.tss

    @property
    def rsquared_adj(self) -> float:
        """R's "Adjusted R-squared": 1 - (1 - R^2) (N - i) / (N - p), i = 1 with an intercept."""
        return 1.0 - (1.0 - self.rsquared) * (self.n_obs - int(self._has_intercept)) / self.df_resid

    @property
    def fvalue(self) -> float:
        """R's F statistic of the model against the intercept alone (against 0 without one)."""
        df_model = len(self.params) - int(self._has_intercept)
        if self.tss is None or df_model == 0:
            return float("nan")
        rss = self.sigma2_resid * self.df_resid
        return (self.tss - rss) / df_model / self.sigma2_resid

    @property
    def f_pvalue(self) -> float:
        """The F statistic's upper tail probability."""
        import scipy.stats

        df_model = len(self.params) - int(self._has_intercept)
        return float(scipy.stats.f.sf(self.fvalue, df_model, self.df_resid))

    @property
    def sigma2(self) -> float:
        """Deprecated alias of :attr:`sigma2_resid` (the residual variance)."""
        warnings.warn(
            "OlsResult.sigma2 is renamed sigma2_resid (the name LmmResult uses)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.sigma2_resid

    @property
    def tvalues(self) -> pd.Series:
        return self.params / self.bse

    def summary(self) -> str:
        """Text laid out like R's ``summary(lm(...))``."""
        import scipy.stats  # imported here: it is slow to load and only the summary needs it

        t = self.tvalues
        p = 2 * scipy.stats.t.sf(np.abs(t), self.df_resid)
        rows = _coef_rows(self.params.index, self.params.to_numpy(), self.bse.to_numpy())
        for row, pv in zip(rows, p, strict=True):
            row.append("< 2e-16" if pv < 2e-16 else _sig(pv, 3))
        out = [
            f"Call:\nlm(formula = {self.formula})",
            "",
            "Residuals:",
            _quantile_line(self.resid),
            "",
            "Coefficients:",
            _fmt_table(rows, ["", "Estimate", "Std. Error", "t value", "Pr(>|t|)"]),
            "",
            f"Residual standard error: {_sig(np.sqrt(self.sigma2_resid), 4)} on {self.df_resid} degrees of freedom",
        ]
        if self.n_dropped:
            out.append(f"  ({self.n_dropped} observations deleted due to missingness)")
        df_model = len(self.params) - int(self._has_intercept)
        if self.tss is not None and df_model > 0:
            f_p = self.f_pvalue
            out += [
                f"Multiple R-squared:  {_sig(self.rsquared, 4)},\t"
                f"Adjusted R-squared:  {_sig(self.rsquared_adj, 4)} ",
                f"F-statistic: {_sig(self.fvalue, 4):>5} on {df_model} and {self.df_resid} DF,  "
                f"p-value: {'< 2.2e-16' if f_p < 2.2e-16 else _sig(f_p, 4)}",
            ]
        if self.reference_levels:
            shown = ", ".join(f"{k} = {v}" for k, v in self.reference_levels.items())
            out.append(f"Reference levels: {shown}")
        if self.bse_cluster is not None:
            out += [
                "",
                f"Cluster-robust standard errors (CR1, {self.n_clusters} clusters of {self.cluster}):",
                _fmt_table(
                    [[r_term_name(k), _sig(v, 4)] for k, v in self.bse_cluster.items()],
                    ["", "Std. Error"],
                ),
            ]
        return "\n".join(out)

    def __repr__(self) -> str:
        terms = ", ".join(f"{k}={v:.6g}" for k, v in self.params.items())
        return f"OlsResult({self.formula!r}: {terms}; n_obs={self.n_obs})"


@dataclass(frozen=True, eq=False)
class LmmResult(PandasCopies):
    """A linear mixed model fit with one grouping factor, as lme4's ``lmer`` gives it.

    For one random intercept ``(1 | g)`` the fields are as listed. With random slopes or several random
    terms (``(1 + x | g)``, ``(x || g)``, ...; ``random`` is then set) ``theta`` is a 1-D array in lme4's
    order, ``sigma2_group`` is NaN (read the variances from ``varcorr``), ``ranef`` and ``ranef_sd`` are
    DataFrames (one column per random term), ``ranef_cov`` holds the conditional covariances and
    ``singular`` is lme4's ``isSingular``; see :func:`helpers.fit.fit_random_terms`. ``varcorr`` and
    ``random_effects`` have the same shape for both kinds of model.

    Attributes
    ----------
    fe_params, bse : pandas.Series
        Fixed effects and their standard errors, indexed by formulaic term names.
    cov_fe : pandas.DataFrame
        sigma^2 (X' V^{-1} X)^{-1} at the estimates (lme4's ``vcov``).
    sigma2_group, sigma2_resid : float
        sigma_b^2 and sigma^2.
    theta : float
        sigma_b / sigma.
    criterion : float
        -2 log L_REML (lme4's ``REMLcrit``) for REML fits, the deviance for ML fits.
    loglik : float
        -criterion / 2, lme4's ``logLik``.
    reml : bool
    ranef : pandas.Series
        Conditional modes of the random intercepts, by group label.
    ranef_sd : pandas.Series
        Their conditional SDs (lme4's ``condVar``).
    n_obs, n_groups, n_dropped : int
    singular : bool
        True when sigma_b^2 is estimated exactly at its boundary 0.
    converged : bool
    formula, response, group : str
    design : helpers.design.Design or None
        The rows and sufficient statistics the fit used (None for fits from aggregates).
    stats : helpers.design.SufficientStats
    optsum : helpers.kernel.OptSummary or None
        The record of the optimisation (start, evaluations, final value and slope, bound, time, method).
    random : helpers.random_terms.RandomEffects or None
        Random slopes or several random terms: Z, the term names, theta's structure and names; None for
        one random intercept.
    ranef_cov : ndarray, shape (J, q, q), or None
        With ``random``: the conditional covariances of the random effects (lme4's ``condVar``).
    """

    fe_params: pd.Series
    bse: pd.Series
    cov_fe: pd.DataFrame
    sigma2_group: float
    sigma2_resid: float
    theta: float
    criterion: float
    loglik: float
    reml: bool
    ranef: pd.Series
    ranef_sd: pd.Series
    n_obs: int
    n_groups: int
    n_dropped: int
    singular: bool
    converged: bool
    formula: str
    response: str
    group: str
    stats: SufficientStats
    design: Design | None = None
    optsum: OptSummary | None = None
    random: object = None
    ranef_cov: object = None

    @property
    def varcorr(self) -> pd.DataFrame:
        """The variance components as ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor.

        lme4's row order: each term's variances, then its covariances (``sdcor``: correlations), then
        ``Residual``; R's term names. For a random intercept: the group's row and ``Residual``.
        """
        from .random_terms import varcorr_frame

        return varcorr_frame(self.random, self.theta, self.sigma2_resid, self.group)

    @property
    def random_effects(self) -> pd.DataFrame:
        """The conditional modes, one row per group (its label as index), one column per random term
        (R's names), then their conditional variances (``condvar <term>``); the same shape for a random
        intercept (columns ``(Intercept)`` and ``condvar (Intercept)``) as for random slopes."""
        if self.random is not None:
            return self.ranef
        return pd.DataFrame(
            {
                "(Intercept)": self.ranef.to_numpy(),
                "condvar (Intercept)": self.ranef_sd.to_numpy() ** 2,
            },
            index=self.ranef.index,
        )

    @property
    def reference_levels(self) -> dict:
        """Each factor coded by treatment contrasts -> its reference (first) level, as R prints it.

        Levels are sorted as R sorts them in the C locale (or kept in a categorical column's order);
        empty for a fit made from aggregates without a design.
        """
        return dict(getattr(self.design, "reference_levels", None) or {})

    @property
    def method(self) -> str:
        """``"REML"`` or ``"ML"``."""
        return "REML" if self.reml else "ML"

    @property
    def tvalues(self) -> pd.Series:
        return self.fe_params / self.bse

    @property
    def sigma_group(self) -> float:
        return float(np.sqrt(self.sigma2_group))

    @property
    def sigma_resid(self) -> float:
        return float(np.sqrt(self.sigma2_resid))

    @property
    def corr_fe(self) -> pd.DataFrame:
        """The correlation of the fixed effects."""
        sd = np.sqrt(np.diag(self.cov_fe.to_numpy()))
        return self.cov_fe / np.outer(sd, sd)

    def fitted(self, include_random: bool = True) -> np.ndarray:
        """Fitted values for the rows used, with or without the conditional modes."""
        if self.design is None:
            raise ValueError("This fit was made from aggregates and has no rows.")
        value = self.design.X @ self.fe_params.to_numpy()
        if include_random and self.random is not None:
            modes = self.ranef[self.random.names].to_numpy()
            value = value + np.sum(self.random.Z * modes[self.design.group_codes], axis=1)
        elif include_random:
            value = value + self.ranef.to_numpy()[self.design.group_codes]
        return value

    def resid(self) -> np.ndarray:
        """Conditional residuals y - X beta - b_i of the rows used (lme4's ``resid``)."""
        return self.design.y - self.fitted(include_random=True)

    # Inference lives in helpers.inference; these methods only delegate, so the result stays frozen.
    def confint(
        self, method: str = "profile", level: float = 0.95, **kwargs: object
    ) -> pd.DataFrame:
        """Confidence intervals for sigma_b, sigma and the fixed effects; see :func:`helpers.inference.confint`."""
        from .inference import confint

        return confint(self, method=method, level=level, **kwargs)

    def bootstrap(self, n: int = 1000, seed: int | None = None, **kwargs: object) -> pd.DataFrame:
        """Parametric bootstrap replicates; see :func:`helpers.inference.bootstrap`."""
        from .inference import bootstrap

        return bootstrap(self, n=n, seed=seed, **kwargs)

    def satterthwaite_tests(self) -> pd.DataFrame:
        """t statistics, Satterthwaite df and p-values; see :func:`helpers.inference.satterthwaite_tests`."""
        from .inference import satterthwaite_tests

        return satterthwaite_tests(self)

    def tests(self) -> pd.DataFrame:
        """The former name of :meth:`satterthwaite_tests` (deprecated)."""
        warnings.warn(
            "LmmResult.tests() is renamed satterthwaite_tests()", DeprecationWarning, stacklevel=2
        )
        from .inference import satterthwaite_tests

        return satterthwaite_tests(self)

    def predict(self, data: pd.DataFrame, include_random: bool = True) -> pd.Series:
        """Predictions for rows of ``data``; see :func:`helpers.inference.predict`."""
        from .inference import predict

        return predict(self, data, include_random=include_random)

    def summary(self) -> str:
        """Text laid out like lme4's ``summary(lmer(...))``."""
        crit_name = "REML criterion at convergence" if self.reml else None
        lines = [
            f"Linear mixed model fit by {'REML' if self.reml else 'maximum likelihood'}",
            f"Formula: {self.formula}",
            "",
        ]
        if crit_name:
            lines.append(f"{crit_name}: {self.criterion:.1f}")
        else:
            k = len(self.fe_params) + 2
            lines.append(
                _fmt_table(
                    [
                        [
                            "",
                            f"{-2 * self.loglik + 2 * k:.1f}",
                            f"{-2 * self.loglik + np.log(self.n_obs) * k:.1f}",
                            f"{self.loglik:.1f}",
                            f"{self.criterion:.1f}",
                            f"{self.n_obs - k}",
                        ]
                    ],
                    ["", "AIC", "BIC", "logLik", "deviance", "df.resid"],
                )
            )
        variances = _column([self.sigma2_group, self.sigma2_resid])
        sds = _column([self.sigma_group, self.sigma_resid])
        if self.design is not None and self.design.has_rows:
            lines += [
                "",
                "Scaled residuals:",
                _quantile_line(self.resid() / self.sigma_resid, places=4),
            ]
        random_table = _fmt_table(
            [
                [f" {self.group}", "(Intercept)", variances[0], sds[0]],
                [" Residual", "", variances[1], sds[1]],
            ],
            [" Groups", "Name", "Variance", "Std.Dev."],
            left=2,
        )
        if self.random is not None:
            random_table = varcorr_table(self.varcorr)
        lines += [
            "",
            "Random effects:",
            random_table,
            f"Number of obs: {self.n_obs}, groups:  {self.group}, {self.n_groups}",
            "",
            "Fixed effects:",
            _fmt_table(
                _coef_rows(self.fe_params.index, self.fe_params.to_numpy(), self.bse.to_numpy()),
                ["", "Estimate", "Std. Error", "t value"],
            ),
        ]
        if self.reference_levels:
            shown = ", ".join(f"{k} = {v}" for k, v in self.reference_levels.items())
            lines.append(f"Reference levels: {shown}")
        if len(self.fe_params) > 1:
            corr = self.corr_fe.to_numpy()
            names = [r_term_name(n) for n in self.fe_params.index]
            short = [n[:6] if n != "(Intercept)" else "(Intr)" for n in names]
            rows = []
            for i in range(1, len(names)):
                cells = [f"{corr[i, j]:.3f}" for j in range(i)]
                rows.append([names[i]] + cells + [""] * (len(names) - 1 - i))
            lines += ["", "Correlation of Fixed Effects:", _fmt_table(rows, [""] + short[:-1])]
        if self.singular and self.random is not None:
            lines += ["", "boundary (singular) fit: see help('isSingular')"]
        elif self.singular:
            lines += ["", "boundary (singular) fit: the group variance is estimated as exactly 0"]
        if not self.converged:
            lines += ["", "warning: the optimiser did not converge"]
        if self.n_dropped:
            lines += [f"({self.n_dropped} rows dropped for missing values)"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        terms = ", ".join(f"{k}={v:.6g}" for k, v in self.fe_params.items())
        if self.random is not None:
            return (
                f"LmmResult({self.method}: {terms}; theta={np.round(self.theta, 6).tolist()}, "
                f"sigma2_resid={self.sigma2_resid:.6g}; n_obs={self.n_obs}, n_groups={self.n_groups})"
            )
        return (
            f"LmmResult({self.method}: {terms}; sigma2_group={self.sigma2_group:.6g}, "
            f"sigma2_resid={self.sigma2_resid:.6g}; n_obs={self.n_obs}, n_groups={self.n_groups})"
        )


def varcorr_table(varcorr: pd.DataFrame) -> str:
    """The random-effects block of lme4's ``summary``: Groups, Name, Variance, Std.Dev., Corr.

    Each term's variances one per line (the group named on its first line), each line followed by
    its correlations with the term's earlier columns (two decimals), then ``Residual``.
    """
    variances = varcorr[varcorr["var2"].isna()]
    var_text = dict(zip(variances.index, _column(variances["vcov"].to_numpy()), strict=True))
    sd_text = dict(zip(variances.index, _column(variances["sdcor"].to_numpy()), strict=True))
    corr = {(r.grp, r.var1, r.var2): r.sdcor for r in varcorr[varcorr["var2"].notna()].itertuples()}
    width = max((len(variances[variances["grp"] == g]) for g in variances["grp"]), default=1)
    rows = []
    previous: dict[str, list] = {}
    for idx, r in variances.iterrows():
        if r["grp"] == "Residual":
            rows.append([" Residual", "", var_text[idx], sd_text[idx]] + [""] * (width - 1))
            continue
        earlier = previous.setdefault(r["grp"], [])
        shown_group = r["grp"].split(".")[0] if not earlier else ""
        cells = []
        for other in earlier:
            value = corr.get((r["grp"], other, r["var1"]), np.nan)
            cells.append("" if not np.isfinite(value) else f"{value:.2f}")
        rows.append(
            [f" {shown_group}", r["var1"], var_text[idx], sd_text[idx]]
            + cells
            + [""] * (width - 1 - len(cells))
        )
        earlier.append(r["var1"])
    header = [" Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if width > 1 else [])
    header += [""] * (width - 1 - (1 if width > 1 else 0))
    return _fmt_table(rows, header, left=2)
