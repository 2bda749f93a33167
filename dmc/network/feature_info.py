"""What a network's stage outputs are, as timm's ``FeatureInfo``: channels, stride and module of each stage, and the
one check of a selection of stages (timm's ``feature_take_indices``) that every consumer of stage outputs uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dmc.errors import InvalidInputError


class FeatureInfo(list[dict[str, Any]]):
    """The stage outputs of a network in forward order, one mapping each: ``num_chs`` (channels), ``reduction``
    (stride), ``module`` (the module whose output it is) and ``block`` (the index in ``blocks`` after which the stage
    ends, -1 for the stem). A list of those mappings, as timm's ``feature_info`` was, with timm's accessors."""

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """The channels of stage ``idx`` (an int), of stages ``idx`` (a list), or of every stage (None)."""
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """The stride of stage ``idx`` (an int), of stages ``idx`` (a list), or of every stage (None)."""
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """The module name (``stem``, ``blocks.7``) of stage ``idx`` (an int), of stages ``idx`` (a list), or of every
        stage (None)."""
        return self._get("module", idx)

    def _get(self, key: str, idx: int | Sequence[int] | None) -> Any:
        if idx is None:
            return [info[key] for info in self]
        if isinstance(idx, int):
            return self[idx][key]
        return [self[i][key] for i in idx]

    def take_indices(self, indices: int | Sequence[int] | None = None, name: str = "indices") -> list[int]:
        """The stages ``indices`` selects, in forward order, each once: None selects every stage, an int n the last n
        stages, a sequence those stage indices (negative ones count from the end). Anything else is one
        :class:`InvalidInputError` that names the argument (``name``) and the stages the network has."""
        stages = len(self)
        if indices is None:
            return list(range(stages))
        if isinstance(indices, bool) or not isinstance(indices, (int, Sequence)) or isinstance(indices, (str, bytes)):
            raise InvalidInputError(f"{name}={indices!r}: expected a number of stages or a list of stage indices")
        if isinstance(indices, int):
            if not 1 <= indices <= stages:
                raise InvalidInputError(f"{name}={indices}: the network has {stages} stages",
                                        f"give 1 to {stages} for the last stages, or a list of stage indices")
            return list(range(stages - indices, stages))
        invalid = f"{name} {indices!r} are invalid: the network has stages 0..{stages - 1} (strides {self.reduction()})"
        hint = f"give stage indices from 0 to {stages - 1} (negative ones count from the end), e.g. " \
               f"{[*range(stages)][-3:]}"
        if not indices:
            raise InvalidInputError(f"{invalid}; none is given", hint)
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int):
                raise InvalidInputError(f"{invalid}; {i!r} is not a stage index", hint)
            if not -stages <= i < stages:
                raise InvalidInputError(f"{invalid}; {i} is out of range", hint)
        return sorted({i % stages for i in indices})
