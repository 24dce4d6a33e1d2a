"""Chapter quizzes: question banks (data under ``banks/``) shown as ipywidgets, progress saved."""
