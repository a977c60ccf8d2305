"""training/steps"""
