"""Analysis tools of the papers' figures (Hu et al. 2018 Fig. 3: trace norm rate, t-SNE)."""
