"""TD-MPC2 in JAX. Importing the package configures memory reuse first (see `malloc.py`)."""
from tdmpc2_jax.malloc import reuse_freed_memory

reuse_freed_memory()
