"""(being written by the ops helper)"""
__all__: list[str] = []
