"""What each ``alps`` sub-command runs, by stage group; a module is imported only when one of its commands
runs (its imports are those commands' own: pandas, rasterio, scikit-learn, torch, mmseg)."""
