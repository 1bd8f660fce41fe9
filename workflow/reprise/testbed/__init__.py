"""Real runs on real nodes: inventories, provisioning, process lifecycle, link shaping, trainers."""
