"""The REST API of the user's guide, under /api/v1/emag/products, served by `magflow serve`."""
