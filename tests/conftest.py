pytest_plugins = ["magflow.testing.database", "magflow.testing.sandbox", "magflow.testing.sync"]
