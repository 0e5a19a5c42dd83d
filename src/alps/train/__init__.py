"""Training on pseudo-labels with mmsegmentation (config builder, surgery, runners)."""
