from medseg.cli import app

app()
