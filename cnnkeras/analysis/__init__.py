"""Model analysis (shapes, parameters, MACs, receptive fields) and run frames."""
