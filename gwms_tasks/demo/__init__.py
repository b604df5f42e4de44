"""``make demo``: the factory, a frontend, two local sites and demo user jobs on one machine."""
