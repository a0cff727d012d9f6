"""Video calls: ICE server configuration for the browsers' WebRTC mesh."""
