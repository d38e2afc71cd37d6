"""ddastate.apis"""
