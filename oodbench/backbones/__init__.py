"""Vision-language backbones behind one interface (:class:`Backbone`)."""
