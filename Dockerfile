# The image users run:
#   docker build -t balancer .
#   docker run -e BALANCER_TOKEN=change-me-to-a-long-secret -p 8000:80 -p 9123:9123 balancer
FROM node:26-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY openapi.yaml ./
RUN mkdir -p /data && chown node:node /data
USER node
# The API listens on every interface inside the container, so it requires a
# token: BALANCER_TOKEN, or one generated at first start, printed once and
# kept in /data/balancer.json.token.
ENV BALANCER_API=0.0.0.0:9123 \
    BALANCER_CONFIG=/data/balancer.json
VOLUME /data
EXPOSE 80 9123
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/balancer.js"]
