"""Running untrusted code: the zygote, the child's harness, isolation tiers, the wire protocol."""
