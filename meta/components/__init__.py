"""Building blocks of meta operations: name rules, path resolution, permission checks."""
