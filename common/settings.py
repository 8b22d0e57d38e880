"""Config fields that document themselves.

Every hyperparameter is a dataclass field built with `setting`, carrying its
meaning, unit and source, so `--help` prints the hyperparameter table and
`config.json` can be checked against what a finished stage depended on.
"""

import dataclasses
from typing import Any


def setting(default: Any, doc: str, unit: str = "", source: str = "", locked: bool = True):
    """A config field.

    doc: what the value means. unit: e.g. "steps", "frames", "1" for a ratio.
    source: where the value comes from ("paper, appendix A.1", "authors' code").
    locked: once a stage that reads this field has finished, changing it is
    refused (False for values that only change how a stage runs or how long,
    such as worker counts, training lengths and logging intervals).
    """
    metadata = {"doc": doc, "unit": unit, "source": source, "locked": locked}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def describe(section_name: str, section_class: type) -> list[str]:
    """One help line per field of a config section: name, default, unit, source, meaning."""
    lines = []
    for field in dataclasses.fields(section_class):
        metadata = field.metadata
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        unit = f" [{metadata['unit']}]" if metadata.get("unit") else ""
        source = f" (source: {metadata['source']})" if metadata.get("source") else ""
        lines.append(f"  {section_name}.{field.name}={default!r}{unit}: {metadata.get('doc', '')}{source}")
    return lines
