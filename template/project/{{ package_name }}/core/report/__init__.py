"""The report kit every stage and task draws with: HTML pages, figures, explanations and the EDA context."""
