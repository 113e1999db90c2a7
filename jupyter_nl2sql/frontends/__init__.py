"""What people use: the ``%nl2sql`` magics, the ipywidgets panel and the command line; each only displays."""
