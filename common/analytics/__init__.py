"""Federated analytics: each analysis is a node side and a coordinator side, both pure functions.

The node side takes the rows of a view or tabular dataset (a pandas DataFrame, after cohort
filtering) and the analysis parameters, and returns a JSON-shaped partial; the coordinator side merges
the partials of all nodes, in node order, into the result. With disclosure control off the result
equals the same statistic on the pooled rows (the tests compute both). Partials are plain numbers,
counts are integers, so disclosure control, DP and secure aggregation (``common.privacy``) can act on
them without knowing the analysis.

Analyses (module: what is exact, what each side learns):

* ``count`` (:mod:`.count`), ``histogram`` (:mod:`.histogram`, bins from declared bounds, explicit
  under/overflow), ``moments`` (:mod:`.moments`, Chan's merge), ``crosstab`` (:mod:`.crosstab`,
  declared levels), ``kaplan_meier`` (:mod:`.kaplan_meier`, with numbers at risk): one round each;
* ``quantiles`` (:mod:`.quantiles`, exact type 7 by bisection on counts, at most 16 rounds),
  ``glm`` (:mod:`.glm`, IRLS as statsmodels), ``cox`` (:mod:`.cox`, Breslow, stratified by node):
  iterative, a state machine on the coordinator.

Design matrices and the refusal rules for models are in :mod:`.design`, their shared Wald inference in
:mod:`.wald`; :mod:`.registry` maps names
to functions; :mod:`.local` runs an analysis over in-memory tables through the same JSON boundary.
"""

from common.analytics.registry import ANALYSES, Iterative, OneShot

__all__ = ["ANALYSES", "Iterative", "OneShot"]
