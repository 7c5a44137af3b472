"""docs/features.md is generated from the feature catalogue: the two never disagree."""

from pathlib import Path

from fraud.scoring.features import EXTRA_FEATURES, feature_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "features.md"


def test_feature_doc_is_the_catalogue():
    assert DOC.read_text() == feature_table(), "regenerate: python -m fraud.scoring.features > docs/features.md"
    for name in EXTRA_FEATURES:
        assert f"`{name}`" in DOC.read_text()
