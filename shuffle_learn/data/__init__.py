"""Audio front ends, patches and permutations for the permutation pretext task."""
