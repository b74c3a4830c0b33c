"""TD-MPC2 in JAX: the world model, update and MPPI planner as pure functions, the training loops
and their command lines. Importing it changes nothing in the process; the command lines set
up memory reuse, logging and the compilation cache (`cli.setup_process`)."""
