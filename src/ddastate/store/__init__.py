"""ddastate.store"""
