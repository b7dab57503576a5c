"""What users run: prediction on photos, exports, plots, drawing, 3D viewers, the notebook runner and the
paper dry run."""
