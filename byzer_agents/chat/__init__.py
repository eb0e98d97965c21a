"""The loop: flows (chat -> parse -> validate -> execute) and the drivers that run them, tool
execution, streaming and tracing. It talks to every model through ``core.protocol`` alone."""
