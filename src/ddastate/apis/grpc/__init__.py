"""ddastate.apis.grpc"""
