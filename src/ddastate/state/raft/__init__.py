"""ddastate.state.raft"""
