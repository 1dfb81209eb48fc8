"""Image classification: task.py (the object the loop calls), model.py, loss.py, labels.py, metric.py,
submission.py. Edit these to change how the competition is modelled."""
