"""Runner-level helpers shared by the tools: tool configs and work-dir locks, checkpoint checks,
the total batch, CPU distributed set-up and the CAM progress-bar hook."""
