"""ddastate.state"""
