"""Motion: the AudioPose and AudioEmotion Syncers, their training, and the systems that drive avatars live."""
