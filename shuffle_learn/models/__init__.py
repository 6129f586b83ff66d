"""Networks for the permutation pretext task: the Context Free Network (CFN)."""
