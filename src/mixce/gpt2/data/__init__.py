"""The GPT-2 datasets: sources and their pins, downloads, cleaning and preparation."""
