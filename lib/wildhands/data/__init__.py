"""Data: photographs, crops, masks, heat-maps, renders and synthetic hands, the detector, real data sets,
augmentation and detector-like noise."""
