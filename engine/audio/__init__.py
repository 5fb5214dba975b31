"""Audio: sources, playback, sample and feature rings, streaming speech features, and the audio plugin.

Import what you need from the modules (`engine.audio.plugin.audio_plugin`, `engine.audio.settings.AudioSettings`);
this package file stays empty so importing `engine.audio.settings` stays light.
"""
