"""Small tables shared by the data tests."""
import pyarrow as pa
import pytest


@pytest.fixture
def churn() -> pa.Table:
    """Six customers: numeric, float with a gap, a string feature with a gap, a Yes/No target."""
    return pa.table(
        {
            "tenure": [1, 5, 12, 30, 2, 8],
            "monthly": [20.5, 70.0, 55.1, 99.9, None, 42.0],
            "plan": ["basic", "pro", None, "pro", "basic", "basic"],
            "churned": ["Yes", "No", "No", "No", "Yes", "No"],
        }
    )
