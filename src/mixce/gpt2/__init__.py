"""The GPT-2 track (paper section 4.2): data, models, training, sampling, metrics, selection,
human evaluation, tables and figures."""
