"""The demo's steps, one module each, named after the step; each module's function of the same
name takes the :class:`~ecash_tpm.demo.context.StoryContext` and the step's ``detail`` dict.
Their order and titles are in :data:`ecash_tpm.demo.story.STORY`."""
