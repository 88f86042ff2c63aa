"""Face geometry: landmark templates, alignment and paste-back, detectors."""
