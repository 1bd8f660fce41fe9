"""RoleML automatic role offloading: E-Tree learning roles, their actors and the offload study."""
