"""One runner per real system reproduced on the testbed (FedScale, …)."""
