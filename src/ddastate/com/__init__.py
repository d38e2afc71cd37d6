"""ddastate.com"""
