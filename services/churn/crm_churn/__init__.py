"""Churn (离网预警) and bad-debt (坏账预测) risk: a feature store fed by events, LightGBM models in a registry,
scores with reasons."""
