"""fraud_dask."""
