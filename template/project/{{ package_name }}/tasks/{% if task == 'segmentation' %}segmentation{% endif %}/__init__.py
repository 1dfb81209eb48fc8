"""Semantic segmentation: task.py (the object the loop calls), model.py, loss.py, data.py, labels.py,
postprocess.py, metric.py. Edit these to change how the competition is modelled."""
