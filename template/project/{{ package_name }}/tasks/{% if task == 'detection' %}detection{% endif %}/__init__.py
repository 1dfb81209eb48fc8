"""Object detection: task.py (the object the loop calls), model.py, data.py, labels.py, postprocess.py,
metric.py, submission.py. Edit these to change how the competition is modelled."""
